from activepam.cli import main

raise SystemExit(main())
