"""What both wings put in front of their routes: request context, CORS, problem rendering."""
