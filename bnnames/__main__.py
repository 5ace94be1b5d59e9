from bnnames.cli import main

main()
