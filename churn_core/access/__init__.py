"""Who may do what: the acting user, the roles file and the table of which Platform call needs which role."""
