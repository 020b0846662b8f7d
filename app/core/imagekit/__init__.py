"""ImageKit's own rules, shared by the credential service, the upload API and the bulk
uploader: the allowed file types (``filetypes``) and the limits on sizes, names, folders and
tags (``rules``). Pure; refusals are plain exceptions that each user translates at its edge."""
