from studies.cli import main

raise SystemExit(main())
