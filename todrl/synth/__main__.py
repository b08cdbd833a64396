from todrl.synth.cli import main

raise SystemExit(main())
