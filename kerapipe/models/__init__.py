"""Model architectures. Each module registers its builders with ``@register_model``."""

from kerapipe.models import applications, hub, simple_cnn, unet  # noqa: F401
