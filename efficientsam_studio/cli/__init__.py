"""The ``efsam-studio`` command.

Every module in this package that defines ``register(subparsers)`` adds one subcommand; ``main`` finds
them, so a new command is a new module. Modules import heavy dependencies (torch, Qt) inside their
handlers, so ``efsam-studio --help`` stays fast.
"""
