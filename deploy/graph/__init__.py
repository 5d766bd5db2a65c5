"""Loading and checking NIR graphs: the one gate every ``.nir`` file passes before a target sees it.

:func:`load_graph` reads a file (a truncated or corrupt file, or a node type NIR does not know, is one
:class:`~neuromoco.errors.UserError` line), inlines nested sub-graphs and checks the result with
:func:`check_graph`: every node type supported, shapes agreeing along every edge (inferred from the
Input node forward), parameters finite, one Input and one Output, every node reachable.

Conventions (shared by the reference executor and every target):

* Shapes exclude the batch dimension (NIR's convention): a frame is ``[C, H, W]``, ``Flatten`` dims
  count from the first non-batch dimension, ``Affine`` / ``Linear`` act on the last dimension.
* Several edges into one node add up.
* A cycle (recurrence) is cut at its *recurrent edge*: the edge that closes the cycle in a depth-first
  walk from the Input node following edges in file order. A recurrent edge carries its source's output
  of the previous time step (zero at the first step). :func:`structure` lists them.
* A sub-graph node ``g`` (a nested ``NIRGraph``, as snnTorch writes recurrent layers) is inlined: its
  nodes become ``g.<name>``, its Input and Output nodes become pass-throughs and are removed.
* Scalar or size-1 neuron parameters broadcast to the shape of the node's input.

Modules, one job each: :mod:`.load` (reading a file), :mod:`.normalize` (inlining sub-graphs),
:mod:`.execution` (:class:`GraphStructure`, :func:`structure`), :mod:`.geometry` (conv / pool / Flatten
geometry, :func:`fit_param`), :mod:`.shapes` (``SHAPE_RULES``, :func:`node_io_shapes`,
:func:`node_shapes`) and :mod:`.checks` (:func:`check_finite`, :func:`check_graph`, :func:`spiking_nodes`).
"""

from neuromoco.deploy.graph.checks import check_finite, check_graph, spiking_nodes
from neuromoco.deploy.graph.geometry import (
    Shape,
    conv_geometry,
    conv_padding,
    fit_param,
    flatten_dims,
    flatten_span,
    pool_geometry,
)
from neuromoco.deploy.graph.load import load_graph
from neuromoco.deploy.graph.normalize import normalize_graph
from neuromoco.deploy.graph.shapes import SHAPE_RULES, ShapeRule, node_io_shapes, node_shapes
from neuromoco.deploy.graph.structure import GraphStructure, structure

__all__ = [
    "SHAPE_RULES", "GraphStructure", "Shape", "ShapeRule", "check_finite", "check_graph", "conv_geometry",
    "conv_padding", "fit_param", "flatten_dims", "flatten_span", "load_graph", "node_io_shapes",
    "node_shapes", "normalize_graph", "pool_geometry", "spiking_nodes", "structure",
]
