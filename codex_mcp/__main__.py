from codex_mcp.entry import main

if __name__ == "__main__":
    main()
