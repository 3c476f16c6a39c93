import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)
# Pictures of neurons (and any other cache) go to a folder of this test run, never the user's
# ~/.cache; the CLI and servers started by the tests inherit it.
os.environ["MASSIF_CACHE"] = tempfile.mkdtemp(prefix="massif-test-cache-")
