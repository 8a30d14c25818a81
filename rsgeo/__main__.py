import sys

from rsgeo.cli import main

sys.exit(main())
