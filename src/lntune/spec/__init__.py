"""The bottom layer: definitions every other layer shares (metrics, ...). It imports nothing of lntune but errors."""
