import sys

from efficientsam_studio.cli.main import main

sys.exit(main())
