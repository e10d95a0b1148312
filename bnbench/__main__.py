from bnbench.cli import main

raise SystemExit(main())
