from callreason.demo.generator import main

main()
