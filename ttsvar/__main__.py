from ttsvar.cli import main

raise SystemExit(main())
