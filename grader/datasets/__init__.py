"""The data sets the assignments train and check on, each read offline and verified."""
