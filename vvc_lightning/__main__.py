from vvc_lightning.cli import main

raise SystemExit(main())
