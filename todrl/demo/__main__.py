import sys

from todrl.demo.cli import main

sys.exit(main())
