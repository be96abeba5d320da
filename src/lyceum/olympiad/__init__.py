"""Physics olympiad evaluation (HiPhO) and the self-verifying solver agent (PhysicsMinions design).

Three nouns, as in Inspect AI, each swappable and registered by name: a dataset (``eval.Dataset``), a solver
(``solvers``: plain, minions, official) and scorers (``scorers``: lyceum, official), put together by
``eval.evaluate``. Answer checks are in ``grade``, marking schemes in ``judge``, exam totals and medals in
``scoring``, HiPhO's own protocol in ``official``. Nothing here imports torch; sympy, math-verify, pint and
matplotlib are imported where they are first needed.
"""
