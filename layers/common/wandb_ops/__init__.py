"""wandb-ops shared package: domain logic and the small access modules the handlers use."""

__version__ = "0.1.0"
