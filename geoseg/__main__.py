"""``python -m geoseg`` runs the CLI."""

from geoseg.cli import main

if __name__ == "__main__":
    main()
