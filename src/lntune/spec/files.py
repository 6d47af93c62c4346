"""The names of a skin's files, defined once (lntune.skin writes and reads them; option checks and the Hub name them)."""

SKIN_JSON = "skin.json"  # the record: written last, so a skin without it is unfinished
TENSORS = "tuned.safetensors"  # what trained
CHECKPOINT_DIR = "checkpoint"  # inside a skin folder while its run is unfinished (lntune train --resume reads it)
# What a skin folder holds that belongs on the Hub (the checkpoint of an unfinished run does not).
HUB_FILES = [SKIN_JSON, TENSORS, "README.md", "metrics.json", "metrics.jsonl"]
