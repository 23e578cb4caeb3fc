"""Model architectures. Each module registers its builders with ``@register_model``."""

from kerapipe.models import applications, simple_cnn, unet  # noqa: F401
