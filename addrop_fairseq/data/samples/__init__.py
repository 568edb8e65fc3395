"""Sample data shipped in the package (each folder holds its README and licence)."""
from pathlib import Path

# English-Romanian LibreOffice interface strings, MPL-2.0: QUICKSTART_CORPUS + ".en" / ".ro"
QUICKSTART_CORPUS = str(Path(__file__).parent / "quickstart" / "en-ro")
