from minsky.cli import main

main()
