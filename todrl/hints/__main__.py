import sys

from todrl.hints.cli import main

sys.exit(main())
