"""keras.applications networks registered as MMDSR backbones.

Stage layers are the last activation of the stride-8, -16 and -32 stages
(for MobileNetV2 the expanded activations the keras-io segmentation examples
use; for EfficientNetV2 and ConvNeXt the last block of each stage).
"""

import functools

import keras

from mmdsr_keras.backbones.backbone_spec import BackboneSpec, register_backbone


def _application(application, input_shape, weights, **kwargs):
    return application(
        include_top=False, weights=weights, input_shape=input_shape, **kwargs
    )


def _register(name, application, preprocessing, stage_layers, default_units, **kwargs):
    register_backbone(
        BackboneSpec(
            name=name,
            constructor=functools.partial(_application, application, **kwargs),
            preprocessing=preprocessing,
            stage_layers=tuple(stage_layers),
            default_units=default_units,
        )
    )


apps = keras.applications
_register("resnet50", apps.ResNet50, "caffe",
          ["conv3_block4_out", "conv4_block6_out", "conv5_block3_out"], 512)
_register("resnet101", apps.ResNet101, "caffe",
          ["conv3_block4_out", "conv4_block23_out", "conv5_block3_out"], 512)
_register("resnet152", apps.ResNet152, "caffe",
          ["conv3_block8_out", "conv4_block36_out", "conv5_block3_out"], 512)
_register("efficientnetv2b0", apps.EfficientNetV2B0, "none",
          ["block3b_add", "block5e_add", "top_activation"], 256)
_register("efficientnetv2b3", apps.EfficientNetV2B3, "none",
          ["block3c_add", "block5g_add", "top_activation"], 256)
_register("efficientnetv2s", apps.EfficientNetV2S, "none",
          ["block3d_add", "block5i_add", "top_activation"], 512)
_register("convnext_tiny", apps.ConvNeXtTiny, "none",
          ["convnext_tiny_stage_1_block_2_identity",
           "convnext_tiny_stage_2_block_8_identity",
           "convnext_tiny_stage_3_block_2_identity"], 512)
_register("convnext_small", apps.ConvNeXtSmall, "none",
          ["convnext_small_stage_1_block_2_identity",
           "convnext_small_stage_2_block_26_identity",
           "convnext_small_stage_3_block_2_identity"], 512)
_register("mobilenetv2", apps.MobileNetV2, "tf",
          ["block_6_expand_relu", "block_13_expand_relu", "out_relu"], 256)
for _alpha in (0.25, 0.5, 0.75, 1.0):
    _register(f"mobilenet_{_alpha}", apps.MobileNet, "tf",
              ["conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"], 256,
              alpha=_alpha)
_register("densenet121", apps.DenseNet121, "torch",
          ["pool3_relu", "pool4_relu", "relu"], 512)
