"""The supervisors' live board: server-rendered sections pushed over Server-Sent Events."""
