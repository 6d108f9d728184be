from vvc_lightning.cli.main import main

raise SystemExit(main())
