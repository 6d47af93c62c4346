"""The kinds of LN mask, defined once (lntune.analyse.mask builds them; sweeps, the CLI and the report name them)."""

MASK_KINDS = ("individual", "global", "cv", "random")  # the task's own Fisher, all tasks', all but the task's, random
FISHER_KINDS = MASK_KINDS[:3]  # the kinds a Fisher selects (random is their control)
RANDOM = MASK_KINDS[3]  # the control: as many elements, drawn at random
