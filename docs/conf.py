# Copyright (c) torchgeo-gfm contributors.
# Licensed under the MIT License.

"""Sphinx configuration of the torchgeo-gfm documentation site.

Build with ``make docs`` (HTML in ``docs/_build/html``, warnings are errors, nitpicky
references). The build runs **offline** by default:

* ``intersphinx`` cannot download the inventories of Python, PyTorch, TorchGeo, timm,
  Lightning, rasterio, ... without internet, so the mappings are enabled only when the
  environment variable ``GFM_DOCS_ONLINE=1`` is set (a release build with internet). Offline,
  references to those projects are not links, and ``nitpick_ignore_regex`` below silences
  the nitpicky "reference target not found" warnings **for third-party names only**; every
  reference to a ``torchgeo_gfm`` object must still resolve. Online, the third-party
  ignores are dropped, so a release build checks those references too.
* The tutorials (``docs/tutorials/*.py``, sphinx-gallery) execute during the build on the
  CPU with generated data and tiny models; nothing is downloaded (``HF_HUB_OFFLINE=1``).
  ``GFM_DOCS_NO_GALLERY=1`` skips executing them (fast iteration on the prose).
* ``docs/_ext/gfm_docs.py`` resolves references to our objects by their defining module,
  fixes viewcode backlinks, hides private base classes and writes the CLI ``--help`` pages.
* ``_DOCSTRING_FIXES_PENDING`` (below) lists the few docstrings in ``torchgeo_gfm/`` whose
  references are wrong, exactly as Sphinx reports them, until they are fixed there.
"""

import builtins
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / '_ext'))

# never touch the network from the build: Hub lookups fail fast, caches stay private
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('MPLBACKEND', 'Agg')
os.environ.setdefault('TORCH_HOME', str(DOCS / '_build' / 'torch-home'))
os.environ.setdefault('HF_HOME', str(DOCS / '_build' / 'hf-home'))

import torchgeo_gfm

ONLINE = os.environ.get('GFM_DOCS_ONLINE', '') not in ('', '0')
RUN_GALLERY = os.environ.get('GFM_DOCS_NO_GALLERY', '') in ('', '0')

# -- Project information -----------------------------------------------------

project = 'torchgeo-gfm'
copyright = 'torchgeo-gfm contributors'
author = 'torchgeo-gfm contributors'
version = release = torchgeo_gfm.__version__

# -- General configuration ---------------------------------------------------

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.intersphinx',
    'sphinx.ext.mathjax',
    'sphinx.ext.napoleon',
    'sphinx.ext.todo',
    'sphinx.ext.viewcode',
    'myst_parser',
    'sphinx_gallery.gen_gallery',
    'gfm_docs',  # docs/_ext: CLI help, references by defining module, private bases
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = [
    '_build',
    'Thumbs.db',
    '.DS_Store',
    'tutorials/README.rst',  # sphinx-gallery's header, rendered into the gallery index
    'tutorials/*.py',
    'tutorials/*.ipynb',
]

# warnings are errors (``-W``) and every cross-reference must resolve
nitpicky = True

# -- autodoc / napoleon (as TorchGeo) ----------------------------------------

autodoc_default_options = {
    'members': True,
    'special-members': '__getitem__, __len__, __call__',
    'show-inheritance': True,
}
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_typehints_description_target = 'documented'
autodoc_preserve_defaults = True
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False
python_use_unqualified_type_names = True

# -- MyST --------------------------------------------------------------------

myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3
myst_url_schemes = ['http', 'https', 'mailto']

# -- intersphinx: online only (see the module docstring) ---------------------

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
if ONLINE:
    intersphinx_mapping = {
        'python': ('https://docs.python.org/3', None),
        'numpy': ('https://numpy.org/doc/stable/', None),
        'torch': ('https://docs.pytorch.org/docs/stable/', None),
        'torchvision': ('https://docs.pytorch.org/vision/stable/', None),
        'torchgeo': ('https://torchgeo.readthedocs.io/en/stable/', None),
        'timm': ('https://huggingface.co/docs/timm/main/en/', None),
        'lightning': ('https://lightning.ai/docs/pytorch/stable/', None),
        'torchmetrics': ('https://lightning.ai/docs/torchmetrics/stable/', None),
        'rasterio': ('https://rasterio.readthedocs.io/en/stable/', None),
        'kornia': ('https://kornia.readthedocs.io/en/stable/', None),
        'smp': ('https://smp.readthedocs.io/en/latest/', None),
        'geopandas': ('https://geopandas.org/en/stable/', None),
        'shapely': ('https://shapely.readthedocs.io/en/stable/', None),
        'matplotlib': ('https://matplotlib.org/stable/', None),
    }
intersphinx_timeout = 10

# Third-party names that cannot resolve without intersphinx. Only other projects' names are
# listed: a ``torchgeo_gfm`` reference that does not resolve is always an error.
_THIRD_PARTY = (
    r'(torch|torchvision|torchgeo|timm|lightning|pytorch_lightning|torchmetrics|torchdata'
    r'|kornia|rasterio|affine|segmentation_models_pytorch|smp|geopandas|shapely|pyproj'
    r'|numpy|np|matplotlib|PIL|pandas|pyarrow|safetensors|huggingface_hub|jsonargparse'
    r'|yacs|tqdm|litdata)'
)
# Python's standard library (offline there is no inventory of it either)
_STDLIB = (
    r'(pathlib|collections|collections\.abc|typing|argparse|os|io|abc|enum|dataclasses'
    r'|contextlib|concurrent|logging|random|types|functools|itertools|re|json|csv'
    r'|hashlib|urllib|warnings|threading|multiprocessing|queue|numbers|datetime)'
)
_STDLIB_BARE = (
    r'(Path|PathLike|Sequence|Mapping|MutableMapping|Iterable|Iterator|Callable|Generator'
    r'|Any|Literal|Self|Hashable|Namespace|ArgumentParser|OrderedDict|Enum|IntEnum'
    r'|AbstractContextManager|ContextManager|TypeAlias|ABC|Executor|Logger|BinaryIO'
    r'|TextIO|IO|Buffer|TypeVar|ParamSpec|Collection|Container|Counter|defaultdict'
    r'|Future|Queue|Thread|Event|Lock|Random|NoReturn|Never|Final|ClassVar)'
)
# Common third-party short names that appear unqualified in signatures
_THIRD_PARTY_BARE = (
    r'(Tensor|Module|nn\.Module|Parameter|Dataset|DataLoader|Sampler|Optimizer'
    r'|LRScheduler|Figure|Axes|ndarray|NDArray|DatasetReader|DatasetWriter|CRS|Affine'
    r'|Window|GeoDataFrame|LightningModule|LightningDataModule|Trainer|Callback'
    r'|BaseTask|WeightsEnum|Weights|NonGeoDataset|NonGeoClassificationDataset'
    r'|NonGeoDataModule|BaseDataModule|GeoDataModule|SwinTransformer|MixedPrecision'
    r'|MetricCollection|Metric|AugmentationSequential|DatasetNotFoundError'
    r'|STEP_OUTPUT|OptimizerLRScheduler|dtype|device|Generator|Size|DType|Precision'
    r'|ClassifierHead|StatefulDataLoader|Stateful|ImageFolder|Image|ClayEmbeddings)'
)
nitpick_ignore_regex: list[tuple[str, str]] = []
if not ONLINE:
    nitpick_ignore_regex = [
        (r'py:.*', _THIRD_PARTY + r'(\..*)?'),
        (r'py:.*', _STDLIB + r'\..*'),
        (r'py:.*', _STDLIB_BARE),
        (r'py:.*', _THIRD_PARTY_BARE),
        # Python's builtins (offline Sphinx knows the builtin *types* only, not ``hash``)
        (
            r'py:.*',
            '(' + '|'.join(n for n in dir(builtins) if not n.startswith('_')) + ')',
        ),
    ]

# Docstrings in torchgeo_gfm/ whose nitpicky references fail, each exactly as Sphinx reports
# it. NOT a licence to ignore our names: each entry is a docstring to fix in the package
# (then delete the entry; a stale entry is harmless but should go).
_DOCSTRING_FIXES_PENDING: list[tuple[str, str]] = []  # none: all fixed
nitpick_ignore = list(_DOCSTRING_FIXES_PENDING)

# -- sphinx-gallery: the tutorials -------------------------------------------


sphinx_gallery_conf = {
    'examples_dirs': ['tutorials'],
    'gallery_dirs': ['generated/tutorials'],
    'filename_pattern': r'/tutorial_',
    'ignore_pattern': r'(__init__|_common)\.py',
    'plot_gallery': 'True' if RUN_GALLERY else 'False',
    'download_all_examples': False,
    'remove_config_comments': True,
    'within_subsection_order': 'FileNameSortKey',
    'reset_modules': ('matplotlib', 'gfm_docs.reset_torch'),
    'abort_on_example_error': True,
    'only_warn_on_example_error': False,
    'show_memory': False,
    'min_reported_time': 0,
    'image_scrapers': ('matplotlib',),
    'matplotlib_animations': False,
    'capture_repr': ('_repr_html_', '__repr__'),
    'first_notebook_cell': None,
    'write_computation_times': True,
    # links to our API from the code in tutorials (offline: only our own objects)
    'reference_url': {'torchgeo_gfm': None},
}

# -- HTML ----------------------------------------------------------------------

html_theme = 'sphinx_rtd_theme'
html_title = f'torchgeo-gfm {release}'
html_static_path: list[str] = []
html_theme_options = {'navigation_depth': 3, 'collapse_navigation': False}
html_show_sourcelink = False
