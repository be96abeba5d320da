import sys

from lyceum.cli import main

sys.exit(main())
