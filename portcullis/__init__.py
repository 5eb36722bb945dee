"""portcullis: the command line that fronts every component (`portcullis up`, `portcullis policy test`, ...)."""
