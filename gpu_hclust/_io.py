"""Reading data and linkage matrices from files, writing results atomically.

Formats: ``.npy``, ``.npz``, ``.csv`` (commas), ``.tsv`` / ``.tab`` (tabs) and
any other name as whitespace-separated text. Text files may start with one
header line of column names (detected: a first line that is not all numbers)
and may hold ``#`` comment lines and blank lines. Every problem raises
:class:`InputError` with a one-line message naming the file, the place and the
fix, so the command line can print it as is.
"""

import math
import os
import tempfile
import zipfile

import numpy as np

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


class InputError(ValueError):
    """A data file that cannot be used: missing, unreadable or malformed."""


def _delimiter_for(path):
    return _DELIMITERS.get(os.path.splitext(str(path))[1].lower())


def _parse_float(token):
    try:
        return float(token)
    except ValueError:
        return None


def _fields(k):
    return f"{k} field" if k == 1 else f"{k} fields"


# Separators a file may use instead of the one its extension promises, and the fix.
_OTHER_SEPARATORS = (
    (";", "';' between fields (a spreadsheet's CSV with decimal commas?); save it with ',' "
          "between fields and '.' as the decimal point"),
    ("\t", "tabs between fields; name it .tsv"),
    (",", "commas between fields; name it .csv"),
    (" ", "spaces between fields; name it .txt (whitespace-separated)"),
)


def _separator_hint(text, delimiter, spaces=True):
    """'; the file seems to use ...' when ``text`` (a field, or a whole line without
    ``spaces``) holds another field separator."""
    for sep, fix in _OTHER_SEPARATORS:
        if sep == " " and (not spaces or delimiter is None):
            continue
        if sep != delimiter and sep in text.strip():
            return f"; the file seems to use {fix}"
    return ""


def _read_text(path, delimiter, header):
    """Rows of numbers from a delimited or whitespace text file."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: drop a BOM from Excel
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(
            f"{path}: not a UTF-8 text file; save it as CSV/TSV text or as .npy"
        ) from None
    rows = []
    width = None
    first = True
    for lineno, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = [t.strip() for t in (stripped.split(delimiter) if delimiter else stripped.split())]
        if delimiter == ",":  # quoted numbers from spreadsheets: "1.5"
            tokens = [t[1:-1].strip() if len(t) >= 2 and t[0] == t[-1] == '"' else t
                      for t in tokens]
        values = [_parse_float(t) for t in tokens]
        if first:
            first = False
            is_header = header == "yes" or (header == "auto" and None in values)
            if is_header:
                width = len(tokens)
                continue
        if len(tokens) != width and width is not None:
            raise InputError(
                f"{path}: line {lineno} has {_fields(len(tokens))} but the lines before "
                f"have {width}; every row needs the same number of columns"
                + _separator_hint(stripped, delimiter, spaces=False)
            )
        width = len(tokens)
        for col, (tok, val) in enumerate(zip(tokens, values), start=1):
            if val is None:
                raise InputError(
                    f"{path}: line {lineno}, column {col} is empty; fill in or remove "
                    "missing values" if not tok else
                    f"{path}: line {lineno}, column {col}: {tok!r} is not a number"
                    + _separator_hint(tok, delimiter)
                )
            if not math.isfinite(val):
                raise InputError(
                    f"{path}: line {lineno}, column {col} is {tok!r}; remove or impute "
                    "missing and infinite values"
                )
        rows.append(values)
    if not rows:
        raise InputError(f"{path}: no data rows found")
    return np.array(rows, dtype=np.float64)


def _read_npz(path, key):
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if key is None:
                if len(names) == 1:
                    key = names[0]
                elif "X" in names:
                    key = "X"
                else:
                    raise InputError(
                        f"{path}: holds arrays {', '.join(names) or '(none)'}; "
                        "choose one with --key NAME"
                    )
            if key not in names:
                raise InputError(
                    f"{path}: no array named {key!r}; it holds {', '.join(names) or '(none)'}"
                )
            return archive[key]
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{path}: not a readable .npz archive ({exc})") from None


def _read_npy(path):
    # Memory-mapped: a large file is not read into memory before linkage has
    # predicted whether the run fits (and float64 data is never copied here).
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refuse them
        raise InputError(f"{path}: cannot load without pickle ({exc}); save numbers only") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None


# Elements per piece when scanning an array: a memory-mapped input of any size
# is checked without a temporary as large as itself.
_SCAN_CHUNK = 1 << 22


def first_non_finite(arr):
    """Index of the first NaN or infinite element of ``arr`` (a tuple), or None.

    Scans in pieces of about 4 Mi elements, so a memory-mapped array of any
    size needs no temporary of its own size.

    Examples
    --------
    >>> import numpy as np
    >>> first_non_finite(np.array([[0.0, 1.0], [np.nan, 2.0]]))
    (1, 0)
    >>> first_non_finite(np.arange(5.0)) is None
    True
    """
    rows = max(1, _SCAN_CHUNK // max(1, int(np.prod(arr.shape[1:]))))
    for start in range(0, arr.shape[0], rows):
        bad = ~np.isfinite(arr[start:start + rows])
        if bad.any():
            where = np.argwhere(bad)[0]
            return (int(where[0]) + start,) + tuple(int(i) for i in where[1:])
    return None


def non_finite_error(path, arr, where):
    """The InputError for the non-finite element at ``where`` (from :func:`first_non_finite`)."""
    if len(where) == 2:
        place = f"row {where[0] + 1}, column {where[1] + 1}"
    else:
        place = f"element {where[0] + 1}"
    return InputError(
        f"{path}: {place} is {arr[where]} (counting from 1); remove or impute missing "
        "and infinite values"
    )


def _check_numbers(arr, path, check_finite=True):
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{path}: holds {arr.dtype} values; expected real numbers")
    arr = np.asarray(arr, dtype=np.float64)  # no copy for float64 (memory-mapped stays so)
    if check_finite:
        where = first_non_finite(arr)
        if where is not None:
            raise non_finite_error(path, arr, where)
    return arr


def read_data(path, *, key=None, header="auto", allow_condensed=True, check_finite=True):
    """Read an observation matrix (or condensed distances) from a file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy``, ``.npz``, ``.csv``, ``.tsv``/``.tab``, or whitespace-separated
        text (any other extension).
    key : str, optional
        Array name inside an ``.npz`` archive; by default its only array, or
        the one named ``X``.
    header : {'auto', 'yes', 'no'}, optional
        Whether a text file's first line holds column names; 'auto' treats it
        as a header when any of its fields is not a number.
    allow_condensed : bool, optional
        Accept a 1-D binary array as condensed distances (as ``linkage`` does).
        Text files always give a 2-D matrix (one row per observation).
    check_finite : bool, optional
        Scan binary arrays for NaN and infinite values (text is always checked
        as it is parsed). False leaves the scan to ``linkage``, which reads a
        large file once instead of twice; :func:`first_non_finite` then
        locates a bad value for the message.

    Returns
    -------
    ndarray of float64
        Shape (n, d) observations, or (n(n-1)/2,) condensed distances from a
        1-D ``.npy``/``.npz`` array. A 1-D float64 ``.npy`` file is memory-mapped
        (read-only), not read into memory.

    Raises
    ------
    InputError
        Missing or unreadable file, ragged rows, text that is not a number,
        NaN or infinite values, wrong number of dimensions, fewer than 2
        observations.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = Path(tmp.name) / "points.csv"
    >>> _ = p.write_text("x,y\\n0,0\\n0,1\\n5,5\\n")  # a header line, then rows
    >>> read_data(p)
    array([[0., 0.],
           [0., 1.],
           [5., 5.]])
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    if header not in ("auto", "yes", "no"):
        raise ValueError(f"header must be 'auto', 'yes' or 'no'; got {header!r}")
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; give a data file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            arr = _read_npy(path)
        elif ext == ".npz":
            arr = _read_npz(path, key)
        else:
            arr = _read_text(path, _delimiter_for(path), header)
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    if arr.ndim == 1 and allow_condensed and ext in (".npy", ".npz"):
        arr = _check_numbers(arr, path, check_finite)
        if arr.size < 1:
            raise InputError(f"{path}: empty array; need at least 2 observations")
        return arr
    if arr.ndim != 2:
        expected = ("a 2-D (n, d) observation matrix or a 1-D condensed distance vector"
                    if allow_condensed else "a 2-D (n, d) observation matrix")
        raise InputError(f"{path}: expected {expected}; got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise InputError(
            f"{path}: shape {arr.shape}; clustering needs at least 2 observations "
            "(rows) with at least 1 feature"
        )
    if isinstance(arr, np.memmap):
        # Observations take O(n d), which the run holds anyway: read them in, so the
        # engines see an ordinary writable array (no read-only compiled variants).
        arr = np.array(arr)
    return _check_numbers(arr, path, check_finite)


def read_linkage(path):
    """Read a linkage matrix ``Z`` saved with :func:`save_linkage`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` or text (CSV/TSV/whitespace) with 4 columns.

    Returns
    -------
    Z : ndarray of float64, shape (n-1, 4)

    Raises
    ------
    InputError
        Missing file, wrong shape, NaN or inf, or not a valid linkage matrix
        (the reason as :func:`gpu_hclust.is_valid_linkage` gives it).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = Path(tmp.name) / "Z.npy"
    >>> save_linkage(p, np.array([[0.0, 1.0, 1.5, 2.0]]))
    >>> read_linkage(p)
    array([[0. , 1. , 1.5, 2. ]])
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if os.path.splitext(path)[1].lower() == ".npy":
        arr = _read_npy(path)
    else:
        arr = _read_text(path, _delimiter_for(path), "auto")
    problem = linkage_problem(arr)
    if problem is not None:
        raise InputError(f"{path}: not a linkage matrix: {problem}")
    return np.asarray(arr, dtype=np.float64)


def shaped_like_linkage(arr):
    """True when ``arr`` has the form of a linkage matrix, valid or not.

    Four columns of which the ids (0, 1) and counts (3) are whole numbers
    >= 0 and the counts >= 2: a file that was meant as ``Z``. (Four-feature
    data of this form is read as data with ``--input-kind data``.)

    Examples
    --------
    >>> import numpy as np
    >>> shaped_like_linkage(np.array([[0.0, 1.0, 0.5, 2.0], [0.0, 2.0, 0.7, 3.0]]))
    True
    >>> shaped_like_linkage(np.array([[0.1, 1.0, 0.5, 2.0]]))
    False
    """
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] < 1 or arr.dtype.kind not in "iuf":
        return False
    whole = arr[:, [0, 1, 3]]
    with np.errstate(invalid="ignore"):
        return bool(np.all(whole == np.floor(whole)) and np.all(whole >= 0)
                    and np.all(arr[:, 3] >= 2))


def linkage_problem(arr):
    """Why ``arr`` is not a valid linkage matrix, or None when it is one.

    The checks of :func:`gpu_hclust.is_valid_linkage` (scipy's), on the array
    as float64, plus finite heights (scipy lets NaN pass).

    Examples
    --------
    >>> import numpy as np
    >>> linkage_problem(np.array([[0.0, 1.0, 0.5, 2.0]])) is None
    True
    >>> print(linkage_problem(np.array([[0.0, 1.0, 0.5, 2.0], [0.0, 2.0, 0.7, 3.0]])))
    Linkage 'Z' uses the same cluster more than once. ...
    """
    from ._checks import is_valid_linkage

    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] < 1:
        return (f"shape {arr.shape}; a linkage matrix has shape (n-1, 4), as written by "
                "`gpu-hclust cluster --linkage`")
    if arr.dtype.kind not in "iuf":
        return f"holds {arr.dtype} values; expected real numbers"
    Z = np.asarray(arr, dtype=np.float64)
    where = first_non_finite(Z)
    if where is not None:
        return f"row {where[0] + 1}, column {where[1] + 1} is {Z[where]} (counting from 1)"
    try:
        is_valid_linkage(Z, throw=True, name="Z")
    except (TypeError, ValueError) as exc:
        return " ".join(str(exc).split())
    return None


def check_writable(path):
    """Raise InputError, naming ``path``, when a file cannot be written there.

    Checked before a long run rather than after it: ``path`` is not a folder,
    its folder exists, is a folder and is writable.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> notes = Path(tmp.name) / "notes.txt"
    >>> _ = notes.write_text("x")
    >>> check_writable(notes / "labels.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gpu_hclust._io.InputError: .../notes.txt/labels.csv: .../notes.txt is not a folder
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        if not os.access(folder, os.W_OK):
            raise InputError(f"{path}: folder {folder} is not writable")
        return
    above = folder
    while not os.path.exists(above) and os.path.dirname(above) != above:
        above = os.path.dirname(above)
    if os.path.exists(above) and not os.path.isdir(above):
        raise InputError(f"{path}: {above} is not a folder")
    raise InputError(f"{path}: folder {folder} does not exist")


def _naming(exc, path):
    """``exc`` again, naming the user's ``path`` instead of the temporary file."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return type(exc)(exc.errno, exc.strerror, path)
    return exc


def write_atomic(path, write):
    """Write a file so that it is either complete or absent, never half-written.

    ``write(f)`` receives a binary file object on a temporary file in the same
    folder; on success the temporary file replaces ``path`` (``os.replace``, atomic
    on one file system), on any error (Ctrl-C included) it is removed and the
    error propagates. Errors of the file system name ``path``, never the
    temporary file.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name.
    write : callable
        Called once with the open binary file.

    Raises
    ------
    InputError
        ``path`` is a folder, or its folder is missing, not a folder or not
        writable (see :func:`check_writable`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = Path(tmp.name) / "hello.txt"
    >>> write_atomic(p, lambda f: f.write(b"hi\\n"))
    >>> p.read_text()
    'hi\\n'
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix="." + os.path.basename(path) + ".", suffix=".part")
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions a plain open would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        named = _naming(exc, path)
        if named is exc:
            raise
        raise named from None


_LABEL_EXTS = (".npy", ".csv", ".tsv", ".txt")


def labels_text(labels):
    """Labels as text: a ``label`` header line, then one label per line.

    The same for a file and for standard output, so either reads back alike.

    Examples
    --------
    >>> print(labels_text([2, 1]), end="")
    label
    2
    1
    """
    return "label\n" + "".join(f"{int(v)}\n" for v in labels)


def save_labels(path, labels):
    """Save flat cluster labels atomically: ``.npy``, or text with a ``label`` header.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` (int array), ``.csv``, ``.tsv`` or ``.txt`` (one label per line
        after a ``label`` header line).
    labels : array_like of int, shape (n,)

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = Path(tmp.name) / "labels.csv"
    >>> save_labels(p, [1, 1, 2])
    >>> print(p.read_text(), end="")
    label
    1
    1
    2
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    labels = np.asarray(labels)
    if ext not in _LABEL_EXTS:
        raise InputError(
            f"{path}: labels are written as {', '.join(_LABEL_EXTS)}; choose one of these "
            "extensions"
        )
    if ext == ".npy":
        write_atomic(path, lambda f: np.save(f, labels))
    else:
        text = labels_text(labels)
        write_atomic(path, lambda f: f.write(text.encode()))


def save_linkage(path, Z):
    """Save a linkage matrix atomically: ``.npy`` (exact), or text at full precision.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npy`` (recommended), or ``.csv``/``.tsv``/``.txt`` with 17 significant digits
        (round-trips float64 exactly).
    Z : ndarray, shape (n-1, 4)

    Examples
    --------
    Text keeps 17 significant digits, so reading it back gives the same floats:

    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = Path(tmp.name) / "Z.csv"
    >>> save_linkage(p, np.array([[0.0, 1.0, 0.1, 2.0]]))
    >>> print(p.read_text(), end="")
    0,1,0.10000000000000001,2
    >>> tmp.cleanup()
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    Z = np.asarray(Z, dtype=np.float64)
    if ext == ".npy":
        write_atomic(path, lambda f: np.save(f, Z))
    elif ext in (".csv", ".tsv", ".txt"):
        sep = {".csv": ",", ".tsv": "\t"}.get(ext, " ")
        write_atomic(path, lambda f: np.savetxt(f, Z, fmt="%.17g", delimiter=sep))
    else:
        raise InputError(
            f"{path}: the linkage matrix is written as .npy (or .csv/.tsv/.txt); "
            "choose one of these extensions"
        )
