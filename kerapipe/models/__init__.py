"""Model architectures. Each module registers its builder with ``@register_model``."""

from kerapipe.models import mobilenet, simple_cnn, unet, xception  # noqa: F401
