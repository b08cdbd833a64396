import sys

from todrl.serve.app import main

sys.exit(main())
