"""cadre.serve"""
