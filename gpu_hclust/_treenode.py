"""Tree objects built from a linkage matrix: ``ClusterNode``, ``to_tree``,
``leaves_list``.

``to_tree`` at n = 10^6 creates 2·10^6 Python objects, so nodes use slots and
are created without the argument checks of the public constructor (the matrix
was validated as a whole first), with the garbage collector paused meanwhile.
"""

import gc

from ._checks import check_counts, checked_tree, like_input
from .kernels import cpu_post


class ClusterNode:
    """A tree node class for representing a cluster.

    Leaf nodes correspond to original observations, while non-leaf nodes
    correspond to non-singleton clusters. :func:`to_tree` converts a linkage
    matrix into a tree of these. All parameter names are also attributes.

    Parameters
    ----------
    id : int
        The node id.
    left : ClusterNode, optional
        The left child tree node.
    right : ClusterNode, optional
        The right child tree node.
    dist : float, optional
        Distance for this cluster in the linkage matrix.
    count : int, optional
        The number of samples in this cluster (ignored for non-leaves: their
        count is the sum of their children's).

    Raises
    ------
    ValueError
        Negative id or distance, exactly one child, or a count below 1.

    See Also
    --------
    to_tree : build the tree of a linkage matrix.
    scipy.cluster.hierarchy.ClusterNode : the reference implementation.

    Notes
    -----
    Nodes compare (``<``, ``>``, ``==``) by ``dist``, as in scipy, and are
    therefore unhashable. Extra attributes may be set on a node.

    Examples
    --------
    >>> from gpu_hclust import ClusterNode
    >>> root = ClusterNode(2, ClusterNode(0), ClusterNode(1), dist=1.5)
    >>> root.get_count(), root.is_leaf(), root.get_left().get_id()
    (2, False, 0)
    >>> root.get_left() < root  # nodes compare by dist
    True
    """

    # '__dict__' and '__weakref__' keep arbitrary attributes and weak references
    # working as on scipy's nodes; both are created only when used.
    __slots__ = ("id", "left", "right", "dist", "count", "__dict__", "__weakref__")

    def __init__(self, id, left=None, right=None, dist=0.0, count=1):
        if id < 0:
            raise ValueError(f"The id must be non-negative; got id={id}.")
        if dist < 0:
            raise ValueError(f"The distance must be non-negative; got dist={dist}.")
        if (left is None) != (right is None):
            raise ValueError("Only full or proper binary trees are permitted.  This "
                             "node has one child: pass both left and right, or neither.")
        if count < 1:
            raise ValueError("A cluster must contain at least one original "
                             f"observation; got count={count}.")
        self.id = id
        self.left = left
        self.right = right
        self.dist = dist
        self.count = count if left is None else left.count + right.count

    def _other(self, node):
        if not isinstance(node, ClusterNode):
            raise ValueError(f"Can't compare ClusterNode to type {type(node)}")
        return node

    def __lt__(self, node):
        return self.dist < self._other(node).dist

    def __gt__(self, node):
        return self.dist > self._other(node).dist

    def __eq__(self, node):
        return self.dist == self._other(node).dist

    __hash__ = None  # defining __eq__ makes scipy's nodes unhashable too

    def get_id(self):
        """The identifier of the target node.

        Returns
        -------
        id : int
            ``0 <= id < n`` for original observation ``id``; ``n + i`` for the
            cluster formed by row ``i`` of the linkage matrix.
        """
        return self.id

    def get_count(self):
        """The number of leaf nodes (original observations) below this node.

        Returns
        -------
        get_count : int
            1 for a leaf.
        """
        return self.count

    def get_left(self):
        """Return a reference to the left child tree object.

        Returns
        -------
        left : ClusterNode
            None for a leaf.
        """
        return self.left

    def get_right(self):
        """Return a reference to the right child tree object.

        Returns
        -------
        right : ClusterNode
            None for a leaf.
        """
        return self.right

    def is_leaf(self):
        """Return True if the target node is a leaf.

        Returns
        -------
        leafness : bool
        """
        return self.left is None

    def pre_order(self, func=(lambda x: x.id)):
        """Apply ``func`` to the leaves below this node, left to right.

        Iterative (an explicit stack), so deep trees are fine.

        Parameters
        ----------
        func : callable, optional
            Applied to each leaf node; default returns its id.

        Returns
        -------
        L : list
            ``func(leaf)`` for each leaf in pre-order.

        Examples
        --------
        >>> from gpu_hclust import linkage, to_tree
        >>> root = to_tree(linkage([[0], [2], [6], [13], [14]], "single"))
        >>> root.pre_order()
        [3, 4, 2, 0, 1]
        >>> root.get_right().pre_order(lambda leaf: leaf.count)
        [1, 1, 1]
        """
        out = []
        append = out.append
        stack = [self]
        pop = stack.pop
        push = stack.append
        while stack:
            nd = pop()
            if nd.left is None:
                append(func(nd))
            else:
                push(nd.right)
                push(nd.left)
        return out


def to_tree(Z, rd=False):
    """Convert a linkage matrix into an easy-to-use tree object.

    Parameters
    ----------
    Z : array_like
        The linkage matrix (float64; not cast).
    rd : bool, optional
        When True, also return the list of all 2n-1 nodes, indexed by id.

    Returns
    -------
    tree : ClusterNode or tuple (ClusterNode, list of ClusterNode)
        The root, or ``(root, nodes)`` when ``rd`` is True.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix, or a count in ``Z[:, 3]`` is
        wrong ('Corrupt matrix Z. The count Z[i,3] is incorrect.').

    See Also
    --------
    leaves_list : the leaf order without building objects.
    scipy.cluster.hierarchy.to_tree : the reference implementation.

    Notes
    -----
    Iterative; at n = 10^6 it builds 2·10^6 nodes (a few hundred MB of
    Python objects, about a second). ``dist`` is a Python float.

    Examples
    --------
    >>> from gpu_hclust import linkage, to_tree
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")  # five points on a line
    >>> root, nodes = to_tree(Z, rd=True)
    >>> root.get_id(), root.get_count(), root.dist
    (8, 5, 7.0)
    >>> root.get_left().pre_order(), len(nodes)
    ([3, 4], 9)
    """
    Zh, _, left, right = checked_tree(Z, cast=False)
    check_counts(Zh, left, right)
    n = Zh.shape[0] + 1
    sizes = cpu_post.subtree_sizes(left, right, n)[n:].tolist()
    lefts = left.tolist()
    rights = right.tolist()
    dists = Zh[:, 2].tolist()
    new = object.__new__
    cls = ClusterNode
    paused = gc.isenabled()
    gc.disable()  # millions of new objects would trigger full collections
    try:
        nodes = [None] * (2 * n - 1)
        for i in range(n):
            nd = new(cls)
            nd.id = i
            nd.left = None
            nd.right = None
            nd.dist = 0.0
            nd.count = 1
            nodes[i] = nd
        nid = n
        for a, b, h, c in zip(lefts, rights, dists, sizes):
            nd = new(cls)
            nd.id = nid
            nd.left = nodes[a]
            nd.right = nodes[b]
            nd.dist = h
            nd.count = c
            nodes[nid] = nd
            nid += 1
    finally:
        if paused:
            gc.enable()
    root = nodes[-1]
    if rd:
        return root, nodes
    return root


def leaves_list(Z):
    """Return the leaf ids in the order they appear in the tree, left to right.

    Parameters
    ----------
    Z : array_like
        The linkage matrix (float64; not cast).

    Returns
    -------
    leaves_list : ndarray
        int32, length n, in the input's namespace.

    Raises
    ------
    TypeError, ValueError
        ``Z`` is not a valid linkage matrix.

    See Also
    --------
    scipy.cluster.hierarchy.leaves_list : the reference implementation.

    Notes
    -----
    Two linear passes over the rows (subtree sizes, then offsets): O(n), no
    stack, no recursion.

    Examples
    --------
    >>> from gpu_hclust import leaves_list, linkage
    >>> Z = linkage([[0], [2], [6], [13], [14]], "single")
    >>> leaves_list(Z)
    array([3, 4, 2, 0, 1], dtype=int32)
    """
    Zh, was_cupy, left, right = checked_tree(Z, cast=False)
    order, _, _ = cpu_post.leaf_layout(left, right, Zh.shape[0] + 1)
    return like_input(order, was_cupy)
