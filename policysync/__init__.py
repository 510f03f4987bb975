"""policysync: payer policy surveillance and effective-dated rule pack compilation."""

__version__ = "0.1.0"
