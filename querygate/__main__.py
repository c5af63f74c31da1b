from querygate.cli import main

main()
