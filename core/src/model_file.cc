// Model files: load and save (docs/model-format.md). Implemented by the model-file issue.
