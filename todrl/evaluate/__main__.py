import sys

from todrl.evaluate.cli import main

sys.exit(main())
