"""MobileNetV2 from ``keras.applications``: a light backbone that takes images from 32x32,
so its pooled head (classification, regression) and its spatial head (segmentation) suit
small images on a CPU. Weights as for ``xception``: never downloaded."""

from __future__ import annotations

from kerapipe.models.xception import ApplicationBuilder
from kerapipe.registry import register_model


@register_model("mobilenet_v2", summary="keras.applications.MobileNetV2 backbone (inputs >= 32x32)")
class MobileNetV2(ApplicationBuilder):
    application = "MobileNetV2"
    imagenet_file = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    min_input_size = 32
