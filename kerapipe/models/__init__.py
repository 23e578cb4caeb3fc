"""Model architectures. Each module registers its builder with ``@register_model``."""

from kerapipe.models import simple_cnn, xception  # noqa: F401
