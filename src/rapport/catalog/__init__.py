"""The product catalogue: import (CSV and JSON), browse, and recommend products from purchase events."""
