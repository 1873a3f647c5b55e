"""cadre.knowledge"""
