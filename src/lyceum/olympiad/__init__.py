"""Physics olympiad evaluation (HiPhO) and the self-verifying solver agent (PhysicsMinions design).

Three nouns, as in Inspect AI: a dataset (``data.load_hipho``), a solver (``runner`` / ``agent``) and a scorer
(``grade.check_answer`` for answers, ``judge`` for marking schemes, ``scoring`` for exams and medals). Nothing
here imports torch; sympy, math-verify, pint and matplotlib are imported where they are first needed.
"""
