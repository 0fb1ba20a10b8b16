"""Objects and artifacts: the bucket (a folder locally), hashes, and reads that are verified and capped."""
