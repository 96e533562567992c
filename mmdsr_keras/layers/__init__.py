"""MMDSR's layers (all `keras.ops`, registered serializable)."""

from mmdsr_keras.layers.channel_dual_branch_cross_attention import (
    ChannelDualBranchCrossAttention,
)
from mmdsr_keras.layers.cross_layer_attention import CrossLayerAttention
from mmdsr_keras.layers.dynamic_semantic_gcn import DynamicSemanticGCN
from mmdsr_keras.layers.image_preprocessing import ImagePreprocessing
from mmdsr_keras.layers.labelled_logits import LabelledLogits
from mmdsr_keras.layers.static_graph_classifier import StaticGraphClassifier
from mmdsr_keras.layers.graph_head_details import GraphHeadDetails

__all__ = [
    "ChannelDualBranchCrossAttention",
    "CrossLayerAttention",
    "DynamicSemanticGCN",
    "ImagePreprocessing",
    "LabelledLogits",
    "StaticGraphClassifier",
    "GraphHeadDetails",
]
