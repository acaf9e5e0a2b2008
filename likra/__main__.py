from likra.cli import main

main()
