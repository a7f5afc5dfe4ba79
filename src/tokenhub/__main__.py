from tokenhub.cli import main

main()
