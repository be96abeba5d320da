"""lyceum: a toolkit for people who build reasoning models.

Three systems share one codebase: on-policy distillation (``lyceum.train``), knowledgeable deep research
(``lyceum.research``) and physics-olympiad reasoning (``lyceum.olympiad``). Importing this package is cheap:
torch, transformers and matplotlib are only imported by the modules that need them.
"""

__version__ = "0.1.0"
