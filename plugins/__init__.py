"""prmh's built-in plugins. Each module registers components through the public hooks only."""

BUILTINS = (
    "prmh.plugins.arith",
    "prmh.plugins.task_files",
    "prmh.plugins.sim",
    "prmh.plugins.oracle",
    "prmh.plugins.splitters",
    "prmh.plugins.aggregators",
    "prmh.plugins.selectors",
    "prmh.plugins.searches",
    "prmh.plugins.prms",
    "prmh.plugins.generators",
    "prmh.plugins.corpora",
    "prmh.plugins.tiny",
    "prmh.plugins.losses",
    "prmh.plugins.labelers",
    "prmh.plugins.graders",
    "prmh.plugins.code_grader",
    "prmh.plugins.code_world",
)
