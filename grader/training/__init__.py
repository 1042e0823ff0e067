"""Judge-side training for the accuracy gates: the content-addressed cache, the fit, the background job."""
