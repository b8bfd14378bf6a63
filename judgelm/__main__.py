import sys

from judgelm.cli import main

sys.exit(main())
